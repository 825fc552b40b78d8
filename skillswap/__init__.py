"""SkillSwap: a peer-to-peer skill exchange backend."""

__version__ = "0.1.0"
