"""stereo-occ: 3D reconstruction of household objects from a stereo pair with occupancy networks."""

__version__ = "0.1.0"
