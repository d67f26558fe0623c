"""What would have happened: replay, diff, explain, simulate and the synthetic demo population.
Reads the real data, writes nothing for real."""
