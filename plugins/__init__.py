"""Plugins shipped with the appliance; each folder is one plugin."""
