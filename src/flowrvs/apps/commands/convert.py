"""`flowrvs convert [--method flowrvs|rem] --wan DIR --dit CHECKPOINT.pth [--vae TUNED_VAE.pth] --out MODEL_DIR`:
import a public release (FlowRVS: its DiT and tuned VAE over Wan2.1-T2V-1.3B; REM: its one
checkpoint over Wan2.1-T2V-14B) into a model folder."""

from __future__ import annotations

from flowrvs.errors import FlowRVSError


def register(sub) -> None:
    from flowrvs.models.defaults import TEXT_LEN, TEXT_LENS

    parser = sub.add_parser("convert", help="turn the public FlowRVS or REM release into a flowrvs model folder")
    parser.add_argument("--method", default="flowrvs", choices=("flowrvs", "rem"),
                        help="whose release: flowrvs (default; DiT + tuned VAE) or rem (one checkpoint)")
    parser.add_argument("--wan", required=True,
                        help="the Wan diffusers folder (FlowRVS: Wan2.1-T2V-1.3B-Diffusers; REM: Wan2.1-T2V-14B-Diffusers)")
    parser.add_argument("--dit", required=True, help="the DiT checkpoint (.pth): FlowRVS's, or REM's whole checkpoint")
    parser.add_argument("--vae", default=None, help="FlowRVS tuned_vae.pth (mask decoder); not for rem")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--mask-latent-normalized", action="store_true",
                        help="the checkpoint normalises mask latents like video latents (older FlowRVS releases)")
    parser.add_argument("--text-len", type=int, default=TEXT_LEN, choices=TEXT_LENS,
                        help="prompt embedding length the FlowRVS checkpoint was trained with")
    parser.set_defaults(func=run)


def run(args) -> int:
    from flowrvs.loading.convert import convert_release, convert_rem

    if args.method == "rem":
        if args.vae is not None:
            raise FlowRVSError("--vae is for FlowRVS releases; REM's checkpoint holds its VAE weights")
        out = convert_rem(args.wan, args.dit, args.out)
    else:
        if args.vae is None:
            raise FlowRVSError("--vae is required for a FlowRVS release (its tuned_vae.pth)")
        out = convert_release(args.wan, args.dit, args.vae, args.out, args.mask_latent_normalized, args.text_len)
    print(f"wrote model folder {out}")
    return 0
