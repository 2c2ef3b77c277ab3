print("mpq-bench")
