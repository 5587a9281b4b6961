# A named context's files belong to a host user: docker's image has them owned by root.
chown -R 1234:1234 shared
chmod 0640 shared/lib.txt
