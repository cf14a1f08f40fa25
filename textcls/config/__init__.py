"""Flags, recipes and the up-front checks of them."""
