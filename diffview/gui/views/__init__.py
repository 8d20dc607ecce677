"""One module per tab. Views never import each other; they get what they show from the main window
(the app shell) through the signals and handles it passes them."""
