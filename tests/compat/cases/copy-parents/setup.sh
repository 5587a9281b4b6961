chmod 0750 a/b
