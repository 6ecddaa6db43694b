"""Item server: CRUD on /itens; server2 is this package run again under another name."""
