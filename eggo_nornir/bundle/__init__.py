"""The offline bundle on the controller: its layouts, its cached listing, and the check of a
config against it before any host is touched."""
