"""The plant simulator: pumps, tanks and valves with noise, daily cycles and injectable faults."""
