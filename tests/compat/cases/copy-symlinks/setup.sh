ln -s a.txt tree/link
ln -s /nowhere tree/dangling
