"""The offline channel: a local conda channel built from real artifacts (this interpreter
repackaged, PyPI wheels converted with whl2conda), for the demo, the tests and air-gapped
sites. Not part of the core: nothing outside this package imports it except the
``offline_channel`` task."""
