"""Reasoning engines behind one streaming interface (`Engine`)."""
