"""labsat: hardware-in-the-loop control and sharpness-aware training for physical neural networks."""

__version__ = "0.1.0"
