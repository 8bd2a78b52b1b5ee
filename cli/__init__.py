"""The `homeflow` command line: sandbox, produce, query, routes, package, demo."""
