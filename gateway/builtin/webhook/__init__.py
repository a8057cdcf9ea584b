"""A generic JSON webhook partner: the simplest connector type, and the core's test bed."""
