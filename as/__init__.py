"""The SIP application server of the 2nd-number service (import name ``appserver``; ``as`` is a keyword)."""
# ruff: noqa: N999 - the folder is named as the product layout prescribes; setuptools maps it to appserver
