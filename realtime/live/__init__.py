"""What runs in Daphne: consumers, the channel layer, delivery, presence and the broadcast door."""
