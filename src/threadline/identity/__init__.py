"""Who is calling: users, API tokens and authentication (roles arrive with governance)."""
