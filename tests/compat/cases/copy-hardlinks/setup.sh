ln tree/a.txt tree/b.txt
