ln -s ../corpus/symlink-target symlink
tar -cf t.tar symlink
rm symlink
