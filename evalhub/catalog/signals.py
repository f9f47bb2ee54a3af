"""Signals of the catalogue, for apps above it to react to without the catalogue importing them."""

from django.dispatch import Signal

#: Sent after the commit that registered an adapter version, with `adapter_id=` (the recipe starts on it).
adapter_registered = Signal()
