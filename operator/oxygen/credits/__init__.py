"""Credit accounting: pure arithmetic (ledger.py) and the reservation gate (gate.py)."""
