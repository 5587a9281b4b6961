ln -s sub link
