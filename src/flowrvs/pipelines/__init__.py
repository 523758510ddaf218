"""The diffusers pipeline(s) and the streaming of long videos in windows."""
