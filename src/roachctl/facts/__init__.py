"""Observed host facts — layer `facts` (rank 4: imports exec and below).

- gather.py: ONE POSIX sh script per host per round trip (what `plan.needs` asks for).
- parse.py: that script's report parsed, purely, into `model.facts.HostFacts`.
"""
