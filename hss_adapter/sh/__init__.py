"""Diameter Sh (TS 29.328 stage 2 data, TS 29.329 protocol) on the shared ``secondnum.diameter`` node."""
