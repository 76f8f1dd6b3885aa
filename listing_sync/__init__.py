"""listing-sync: keep a Supabase/PostgREST table of property listings equal to a Google Sheet."""

__version__ = "0.1.0"
