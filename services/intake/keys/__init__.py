"""API keys: public form keys bound to origins and secret server keys, stored hashed (``store``),
and the guard that checks a post's key, origin and rate (``guard``)."""
