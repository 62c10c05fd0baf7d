"""Callbacks."""

__all__ = []
