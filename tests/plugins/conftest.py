"""tests/plugins holds third-party plug-in packages, each with its own tests: the main run does not collect them
(they import their package, which only exists once installed); tests/test_plugin_thirdparty.py installs each one
and runs its tests."""

collect_ignore_glob = ["*"]
