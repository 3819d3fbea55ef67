"""rsim: a bit-accurate simulator of neural-network accelerators."""

from formats.errors import RsimError
from rsim.loader import load
from rsim.network import Layer, Network
from rsim.simulation import SimResult, simulate

__version__ = "0.1.0"

__all__ = ["Layer", "Network", "RsimError", "SimResult", "__version__", "load", "simulate"]
