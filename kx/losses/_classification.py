"""Re-exports of this family's public losses (flattened into kx/losses/__init__.py later)."""

__all__ = []
