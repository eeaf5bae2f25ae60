"""Tasks that agents built from the library's models play (the Deal or No Deal negotiation game)."""
