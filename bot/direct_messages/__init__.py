"""Reports sent to the bot in a direct message, and the DM thread that follows."""
