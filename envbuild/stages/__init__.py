"""The stages of an environment, one module each (lock, build, verify, smoke, pack, docker,
publish, export), and the registry they join (:mod:`envbuild.stages.registry`); CONTRIBUTING.md,
"Adding a stage"."""
