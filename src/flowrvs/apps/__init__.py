"""What users run: the command line and its commands, batch mode, the web page, the demo."""
