"""The small core: hook specs, plugin manager, settings, event model, processing, queries."""
