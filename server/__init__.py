"""The TAXII 2.1 node: a Flask app factory, its resources, auth, validation and storage."""
