print("mpq")
