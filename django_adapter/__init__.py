"""The reusable Django app of bundlekit: capture changes, export and import bundles."""
