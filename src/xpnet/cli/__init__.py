"""What the command-line tools share: flag parsing, one-line errors, the progress bar and the plots."""
