"""Data sources for apvg-hf: the virtual pianist (synthetic, exact labels)."""
