"""Model folders: the format (model_folder) <- weights and release conversion (state_dicts, convert) <- the hub (hub) <- a name (resolve)."""
