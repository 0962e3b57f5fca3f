"""Importers that move a plant's devices and history over from another platform."""
