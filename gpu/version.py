"""Application name and version, recorded in checkpoints and image metadata."""

APP_NAME = "NibbleStudio"
__version__ = "0.1.0"
