"""Model folders: the format, conversion of public releases, the hub, resolution of a name."""
