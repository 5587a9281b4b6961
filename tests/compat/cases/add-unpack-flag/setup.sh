mkdir payload
echo inside > payload/inside.txt
tar -C payload -czf local.tar.gz inside.txt
rm -rf payload
