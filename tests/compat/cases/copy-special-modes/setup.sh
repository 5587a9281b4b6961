mkdir tree/sticky tree/empty
chmod 4755 tree/suid
chmod 2750 tree/sgid
chmod 1777 tree/sticky
chmod 0600 tree/private
chmod 0700 tree/empty
