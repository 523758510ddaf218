"""`flowrvs convert --wan DIR --dit DIT.pth --vae TUNED_VAE.pth --out MODEL_DIR`: import the public release."""

from __future__ import annotations


def register(sub) -> None:
    from flowrvs.models.defaults import TEXT_LEN, TEXT_LENS

    parser = sub.add_parser("convert", help="turn the public FlowRVS release into a flowrvs model folder")
    parser.add_argument("--wan", required=True, help="the Wan2.1-T2V-1.3B-Diffusers folder")
    parser.add_argument("--dit", required=True, help="FlowRVS DiT checkpoint (.pth)")
    parser.add_argument("--vae", required=True, help="FlowRVS tuned_vae.pth (mask decoder)")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--mask-latent-normalized", action="store_true",
                        help="the checkpoint normalises mask latents like video latents (older releases)")
    parser.add_argument("--text-len", type=int, default=TEXT_LEN, choices=TEXT_LENS,
                        help="prompt embedding length the checkpoint was trained with")
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.loading.convert import convert_release

    out = convert_release(args.wan, args.dit, args.vae, args.out, args.mask_latent_normalized, args.text_len)
    print(f"wrote model folder {out}")
    return 0
