"""DepthDesk: order-flow and depth-of-market monitor for crypto perpetual futures."""

__version__ = "0.1.0"
