chmod 0644 a.txt tree/b.txt tree/sub/c.txt
chmod 0755 tree/run.sh tree/sub
