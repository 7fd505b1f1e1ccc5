"""The plugins' release. It must equal the backend's (`dni.__version__`, which the `hello`
reply carries): a plugin that meets another release offers to update the backend
(install_offer). tests/test_install_offer.py checks that the two agree."""

VERSION = "0.1.0"
