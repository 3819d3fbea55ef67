"""rsim: a bit-accurate simulator of neural-network accelerators."""

from formats.errors import RsimError

__version__ = "0.1.0"

__all__ = ["RsimError", "__version__"]
