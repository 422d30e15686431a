"""Tools for writing flows: tests beside each flow, dry runs, graphs, scaffolds, schema checks.

- `platypus.authoring.harness`: ``<flow>.test.yaml`` cases run through the real
  processor with recording fake adapters (``platypus flows test``; for pytest,
  `platypus.testing`);
- `platypus.authoring.dryrun`: what each step would send (``platypus flows run --dry-run``);
- `platypus.authoring.graph`: event types -> flows -> connections (``platypus flows graph``);
- `platypus.authoring.scaffold`: a new flow with tests and a sample (``platypus new flow``);
- `platypus.authoring.compat`: breaking schema changes (``platypus schemas check``);
- `platypus.authoring.cli`: the click commands.
"""
