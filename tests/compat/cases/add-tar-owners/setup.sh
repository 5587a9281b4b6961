mkdir payload
echo f > payload/f.txt
tar -C payload --owner=1234 --group=4321 --numeric-owner -cf owned.tar f.txt
rm -rf payload
